"""producers/fakes"""
