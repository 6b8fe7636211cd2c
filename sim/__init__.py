"""Simulated devices on real transports, their load model, fault injection and output trace."""
