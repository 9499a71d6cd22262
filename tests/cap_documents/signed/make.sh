#!/usr/bin/env bash
# Makes the signed test documents from templates/ with xmlsec1 (an XML-DSig
# implementation independent of loa's: Debian package xmlsec1). Fresh keys each run:
# the certificates are kept beside the documents, the private keys thrown away.
# Run it again only to change the documents; then bless tests/cap/signature.rs' outputs.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
subj() { echo "/CN=loa test signer ($1)/O=loa tests"; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/rsa.key" -out rsa-signer.pem \
  -days 36500 -subj "$(subj RSA)" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ec.key" \
  -out ecdsa-signer.pem -days 36500 -subj "$(subj ECDSA)" 2>/dev/null
openssl req -x509 -newkey rsa:1024 -nodes -keyout "$tmp/short.key" -out "$tmp/short.pem" \
  -days 36500 -subj "$(subj RSA-1024)" 2>/dev/null
# A signer that signed nothing here: trusting only it leaves the others untrusted.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/other.key" -out other-signer.pem \
  -days 36500 -subj "$(subj other)" 2>/dev/null
# The RSA signer's bare public key, for --trust with a PUBLIC KEY block.
openssl x509 -in rsa-signer.pem -pubkey -noout > rsa-signer.pubkey.pem
sign() { xmlsec1 --sign --privkey-pem "$2" --output "$1.xml" "templates/$1.xml"; }
sign rsa-sha256-exclusive "$tmp/rsa.key,rsa-signer.pem"
sign rsa-sha1-inclusive "$tmp/rsa.key"
sign ecdsa-sha256 "$tmp/ec.key,ecdsa-signer.pem"
sign rsa1024-sha256 "$tmp/short.key,$tmp/short.pem"
