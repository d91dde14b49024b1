"""The dashboard: one server-rendered page, small vanilla JS, no build step."""
