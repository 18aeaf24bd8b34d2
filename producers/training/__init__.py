"""producers/training"""
