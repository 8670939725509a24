"""The label's rules, one module each: Table 3 rows, starting-dose rules and order checks.

Each module defines ``RULE``, which declares the rule's id, label section and text, the data
it reads and its behaviour, beside the decision functions specific to it. ``registry`` lists
them in the order the decisions apply them; docs/rules.md is generated from the registry.
"""
