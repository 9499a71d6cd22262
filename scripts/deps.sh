#!/usr/bin/env bash
# Installs the system packages loa needs to build and test, when they are missing.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail

need=()
# cpal (the real sound-card sink) links against ALSA.
dpkg -s libasound2-dev >/dev/null 2>&1 || need+=(libasound2-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# Live broadcasts are Opus: the `opus` crate links Debian's libopus.
dpkg -s libopus-dev >/dev/null 2>&1 || need+=(libopus-dev)
# Tests make their MP3/Ogg stream fixtures with sox (its MP3 encoder is libsox-fmt-mp3).
command -v sox >/dev/null 2>&1 || need+=(sox)
dpkg -s libsox-fmt-mp3 >/dev/null 2>&1 || need+=(libsox-fmt-mp3)
# Text bulletins are rendered to speech at central; tests render a Vietnamese sentence.
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# Tests step the wall clock under a real `loa station` with libfaketime.
dpkg -s faketime >/dev/null 2>&1 || need+=(faketime)
# The console's browser tests (tests/console/browser.rs) drive Debian's chromium
# headless through chromedriver (WebDriver).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# Central on PostgreSQL: the store's contract tests and the replica tests run a
# throwaway server (scripts/pg-test.sh) from Debian's postgresql package.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)

if ((${#need[@]})); then
  echo "installing: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
