#!/usr/bin/env bash
# The Debian packages the test suite drives for real: Chromium (browser tests), SpamAssassin
# (spam scores: the command, spamc, and spamd, a package of its own since Debian 12) and
# Dovecot (IMAP). Installs the missing ones when run as root on a machine with apt-get;
# elsewhere it only says what is missing (those tests then skip, except under CI).
set -euo pipefail

declare -A PACKAGE_OF=(
  [chromium]=chromium
  [spamassassin]=spamassassin
  [spamc]=spamc
  [spamd]=spamd
  [dovecot]=dovecot-imapd
)
missing=()
for cmd in "${!PACKAGE_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${PACKAGE_OF[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (for the browser, spam-score and IMAP tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "not installed: ${missing[*]}; the tests that need them will be skipped" \
       "(install them with apt-get as root)" >&2
fi
