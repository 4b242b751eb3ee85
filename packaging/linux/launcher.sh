#!/bin/sh
# /usr/bin/odt-studio: starts the bundled ODT Studio installed in /opt/odt-studio.
exec /opt/odt-studio/odt-studio "$@"
