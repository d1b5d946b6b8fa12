#!/bin/sh
# Why (baseforge, after debuerreotype-minimizing-config): "apt-get install" in a container happens
# during an image build, where starting services fails or does harm. Exit code 101 ("action forbidden",
# see invoke-rc.d(8)) tells package maintainer scripts not to start or restart services.
exit 101
