"""mailer"""
