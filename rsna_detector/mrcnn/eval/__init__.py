"""The engine's numpy evaluation: ``matching.greedy_match`` (the one matcher) and AP / recall (``metrics``).
"""
