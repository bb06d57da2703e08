"""The label encoding shared by the data contract, the heads and the metrics.

A house number of 1-`MAX_DIGITS` digits is stored as `digits` [MAX_DIGITS] with 0-9 per position and
`PAD` after the last digit (SVHN's own label 10 for the digit 0 is mapped to 0 on ingestion).
"""
MAX_DIGITS = 5
PAD = 10
