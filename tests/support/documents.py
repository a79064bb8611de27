"""Small ruleset documents the tests deploy."""

# One eligibility rule and its own passing test: a deploy of it succeeds.
TINY = """
ruleset: tiny
context:
  customer.tier: {type: string, enum: [bronze, gold]}
eligibility:
  - id: gold-credit
    when: customer.tier == "gold"
    offer: credit
tests:
  - name: gold gets the credit
    context: {customer: {tier: gold}}
    expect: {eligible: [gold-credit]}
"""
