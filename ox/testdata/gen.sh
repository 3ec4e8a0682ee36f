#!/bin/sh
# gen.sh regenerates the GnuPG vectors in this directory. It needs GnuPG 2.2
# (gpg) and nothing else; hush is not involved, so the files are what another
# OpenPGP implementation writes. Every key and message is made at a faked
# system time so that tests can judge validity at a fixed instant:
#
#	keys      2026-01-01T00:00:00Z  (expired-* at 2020-01-01, valid one day)
#	messages  2026-01-02T03:04:05Z  (the <time/> affix says the same)
#
# Usage: sh gen.sh   (from anywhere; writes next to itself)
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all; rm -rf "$GNUPGHOME"' EXIT

KEYTIME=20260101T000000
MSGTIME=20260102T030405
STAMP=2026-01-02T03:04:05Z
CODE=TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW   # the example code of XEP-0373 §5.4

g() { gpg --batch --quiet --no-greeting --pinentry-mode loopback --passphrase '' --trust-model always "$@"; }
fpr() { gpg --batch --with-colons --list-keys "$1" | awk -F: '$1=="fpr"{print $10; exit}'; }
b64() { base64 -w0; }

# Keys: Ed25519 + Curve25519 (gpg's future-default) and RSA-3072.
g --faked-system-time $KEYTIME --quick-gen-key xmpp:alice@example.org future-default default never
g --faked-system-time $KEYTIME --quick-gen-key xmpp:bob@example.org future-default default never
g --faked-system-time $KEYTIME --quick-gen-key xmpp:rob@example.org rsa3072 default never
g --faked-system-time $KEYTIME --quick-add-key "$(fpr xmpp:rob@example.org)" rsa3072 encr never
# Expired: valid for one day in 2020.
g --faked-system-time 20200101T000000 --quick-gen-key xmpp:old@example.org future-default default 1d
# Revoked, with the revocation certificate gpg made at generation.
g --faked-system-time $KEYTIME --quick-gen-key xmpp:gone@example.org future-default default never
gone=$(fpr xmpp:gone@example.org)
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$gone.rev" | g --faked-system-time $KEYTIME --import
# A signing primary key whose only encryption subkey expired.
g --faked-system-time 20200101T000000 --quick-gen-key xmpp:sub@example.org ed25519 sign never
g --faked-system-time 20200101T000000 --quick-add-key "$(fpr xmpp:sub@example.org)" cv25519 encr 1d
# Two User IDs, one of them revoked.
g --faked-system-time $KEYTIME --quick-gen-key xmpp:carol@example.org future-default default never
g --faked-system-time $KEYTIME --quick-add-uid xmpp:carol@example.org xmpp:mallory@example.org
g --faked-system-time $KEYTIME --quick-revoke-uid xmpp:carol@example.org xmpp:mallory@example.org

for who in alice bob rob old gone sub carol; do
	g --armor --export-secret-keys xmpp:$who@example.org >"$dir/$who.sec"
	g --armor --export xmpp:$who@example.org >"$dir/$who.pub"
done

# The public-key data node payload of bob, as XEP-0373 §4.1 publishes it.
{
	printf "<pubkey xmlns='urn:xmpp:openpgp:0'><data>"
	g --export-options export-minimal --export xmpp:bob@example.org | b64
	printf '</data></pubkey>\n'
} >"$dir/bob-pubkey.xml"
fpr xmpp:bob@example.org >"$dir/bob.fpr"

# message FILE CONTENT GPG-ARGS...: the content element CONTENT protected by
# gpg GPG-ARGS, in a <message/> from bob to alice shaped like go-sendxmpp's
# (0.5.6, see README): <store/>, <encryption/>, <openpgp/>, then a fallback
# <body/>; no 'from' (the server adds it).
message() {
	file=$1 content=$2
	shift 2
	{
		printf "<message to='alice@example.org' id='%s'><store xmlns='urn:xmpp:hints'/>" "$file"
		printf "<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>"
		printf "<openpgp xmlns='urn:xmpp:openpgp:0'>"
		printf '%s' "$content" | g --faked-system-time $MSGTIME "$@" -o - | b64
		printf "</openpgp><body>This message is encrypted (XEP-0373: OpenPGP for XMPP).</body></message>\n"
	} >"$dir/$file.xml"
}

# go-sendxmpp's <signcrypt/>: to, time (whole seconds, UTC), rpad of
# letters and digits, payload with a jabber:client body; single quotes;
# signed and encrypted to the recipient and to the sender, no compression.
SC="<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/><time stamp='$STAMP'/><rpad>q7Rg0hPZk2vX9mWc4aLs</rpad><payload><body xmlns='jabber:client'>Hello from go-sendxmpp's format</body></payload></signcrypt>"
message sendxmpp-signcrypt "$SC" -u xmpp:bob@example.org -r xmpp:alice@example.org -r xmpp:bob@example.org --compress-algo none --sign --encrypt
# gpg's defaults: compressed, RSA signer.
SCR="<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/><time stamp='$STAMP'/><rpad>x</rpad><payload><body xmlns='jabber:client'>Hello from RSA</body></payload></signcrypt>"
message rsa-signcrypt "$SCR" -u xmpp:rob@example.org -r xmpp:alice@example.org -r xmpp:rob@example.org --sign --encrypt
# Encrypted to bob and rob only.
message not-for-alice "$SC" -u xmpp:bob@example.org -r xmpp:rob@example.org -r xmpp:bob@example.org --sign --encrypt
# <sign/>: signed, not encrypted (compressed by gpg's default).
SG="<sign xmlns='urn:xmpp:openpgp:0'><to jid='alice@example.org'/><time stamp='$STAMP'/><payload><body xmlns='jabber:client'>Signed, not sealed</body></payload></sign>"
message sign "$SG" -u xmpp:bob@example.org --sign
# A <sign/> that is also encrypted: XEP-0373 §3.1 forbids it.
message sign-encrypted "$SG" -u xmpp:bob@example.org -r xmpp:alice@example.org --sign --encrypt
# <crypt/>: encrypted, not signed.
CR="<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='$STAMP'/><rpad>pad</rpad><payload><body xmlns='jabber:client'>Sealed, not signed</body></payload></crypt>"
message crypt "$CR" -r xmpp:alice@example.org --encrypt
# A <signcrypt/> without <to/>.
NT="<signcrypt xmlns='urn:xmpp:openpgp:0'><time stamp='$STAMP'/><rpad>x</rpad><payload><body xmlns='jabber:client'>to whom?</body></payload></signcrypt>"
message signcrypt-no-to "$NT" -u xmpp:bob@example.org -r xmpp:alice@example.org --sign --encrypt

# A secret-key backup made with gpg following XEP-0373 §5.4: bob's secret
# key (S2K usage 0), one SKESK with the whole code as passphrase, AES-128.
{
	printf "<secretkey xmlns='urn:xmpp:openpgp:0'>"
	g --export-secret-keys xmpp:bob@example.org |
		gpg --batch --quiet --pinentry-mode loopback --passphrase "$CODE" --faked-system-time $MSGTIME \
			--symmetric --cipher-algo AES128 -o - | b64
	printf '</secretkey>\n'
} >"$dir/gpg-backup.xml"
echo "$CODE" >"$dir/gpg-backup.code"
