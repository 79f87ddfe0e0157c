"""What is learned across many posts: alert detectors over event-time windows."""
