"""Moderation: mutes and reports shared by every replica, and the moderator API under ``/chat/moderation/``."""
