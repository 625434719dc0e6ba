"""Physical planning: an optimized logical plan becomes stages of per-block operators, with
exchanges between them and the adaptive rules that size those exchanges from measured data.
"""
