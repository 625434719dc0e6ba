"""The logical plan: frozen nodes a Dataset builds (`logical`), the pure rules that rewrite them
(`optimizer`, `rules/`), and the plan-time size estimates the physical planner uses.
"""
