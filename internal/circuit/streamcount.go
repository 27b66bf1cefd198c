package circuit

// Streams returns how many streams (and RESOLVE requests) are open on the
// circuit now. A circuit manager polls it to close circuits that have been
// idle for a while.
func (c *Circuit) Streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}
