"""The components' own configs, composed into ``queues.settings.Settings``."""
