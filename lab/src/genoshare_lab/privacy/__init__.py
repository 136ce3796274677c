"""Membership-inference attacks on the node's Beacon answers, run to measure the privacy defences.

``python -m genoshare_lab.privacy.harness`` simulates a cohort (cached under ``benchmarks/work/privacy``), attacks
``genoshare.access.privacy.PrivacyGuard`` with the Shringarpure-Bustamante and Raisaro attackers under each
defence, measures benign utility, and writes the power/utility frontier.
"""
