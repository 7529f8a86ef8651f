"""Faceptor's built-in tasks: reusable task families and the declarations of the paper's datasets.

Third-party plugins import the families (``faceptor_tasks.families``) to declare new datasets.
"""
