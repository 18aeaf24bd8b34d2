"""workers/ml"""
