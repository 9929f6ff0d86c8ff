#!/bin/sh
echo "build: checkout 2.4.0 image built"
