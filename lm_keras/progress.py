"""What long work prints about itself: durations for rates and time left. TensorFlow-free."""


def duration(seconds):
    """`1m05s`, or `2h03m00s` from an hour on."""
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
