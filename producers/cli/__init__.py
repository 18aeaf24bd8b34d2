"""producers/cli"""
