"""Uplift: whom a retention contact would keep, learned from past campaigns with a control group."""
