"""Membership: who may do what — account requirements, rate limits, invites."""
