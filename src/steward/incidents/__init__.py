"""Incidents: what alerts open, what people mitigate and resolve, and their postmortems."""
