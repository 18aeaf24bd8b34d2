"""producers/local"""
