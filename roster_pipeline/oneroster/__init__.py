"""oneroster"""
