"""Images: where containers' root filesystems come from.

Until the content-addressed OCI store lands (the images issue), ``local`` keeps
imported root filesystems as one-layer images behind the interface the runtime
uses: ``layers(ref)`` (directories, topmost first) and ``config(ref)``.
"""
