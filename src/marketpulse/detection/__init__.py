"""Detection: the volume-spike detector (pure core), its wall-clock scheduler and the alert store."""
