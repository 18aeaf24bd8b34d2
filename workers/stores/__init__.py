"""Redis-backed stores: budgets (one Lua script), the cost ledger (a stream), the exact cache,
the finalize guard, dead letters and step results."""
