"""Coordination between the processes of one deployment: leases for singleton duties."""
