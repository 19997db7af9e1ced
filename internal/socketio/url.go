package socketio

// CheckURL reports whether Dial accepts rawURL as a server address, so a
// caller that retries failed connections can tell a typo, which no retry
// fixes, from a server that is not up yet.
func CheckURL(rawURL string) error {
	_, err := engineURL(rawURL)
	return err
}
