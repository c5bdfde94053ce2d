"""Photos as files people have: loading with orientation and working size, extra formats, ICC and EXIF."""
