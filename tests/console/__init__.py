"""The browser console in real headless Chromium."""
