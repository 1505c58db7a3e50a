"""Text encoders and prompt learners (registry ``TEXT_ENCODERS``)."""
