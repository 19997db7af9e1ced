package iceserver

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// Credentials follow the "TURN REST API" scheme (docs/extensions.md):
// username "<expiry unix seconds>:<peer id>", password
// base64(HMAC-SHA1(secret, username)). Anyone holding the secret can mint
// them, so mediators sharing a secret (--turn-secret) accept each other's.

// credentials returns a username and password for peer valid until expires.
func credentials(secret []byte, peer string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + peer
	return username, password64(secret, username)
}

func password64(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Errors of parseUsername, also the refusal reasons they are counted as.
var (
	errBadUsername = errors.New("username is not <expiry>:<peer id>")
	errExpired     = errors.New("credentials expired")
)

// parseUsername checks a TURN username's form and expiry and returns the
// peer id in it.
func parseUsername(username string, now time.Time) (peer string, err error) {
	exp, peer, ok := strings.Cut(username, ":")
	if !ok || !mediation.ValidPeerID(peer) || len(exp) == 0 || len(exp) > 19 {
		return "", errBadUsername
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || t <= 0 {
		return "", errBadUsername
	}
	if t < now.Unix() {
		return "", errExpired
	}
	return peer, nil
}
