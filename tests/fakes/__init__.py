"""Local servers that speak the real source protocols, for offline tests."""
