"""Importers: other rule formats converted into Frontline ruleset documents, apart from the
evaluator (nothing in the engine's compile or evaluate path imports them).

``durable``: durable_rules JSON rulesets (``frontline import-durable``).
``dmn``: DMN models' decision tables (``frontline import-dmn``, ``frontline eval-dmn``).
"""
