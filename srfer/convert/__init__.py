"""Checkpoints into other forms: face-api's networks into srfer's, exports, weight averages."""
