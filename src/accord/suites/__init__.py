"""Policy suites: benchmark tasks driven through Accord's gateway, with their expected outcomes.

``accord.suites.retail`` holds the tau-bench retail suite (``accord suite retail``).
"""
