"""One module per resource, each exposing ``router`` (listed in ``polpo.api.app``)."""
