//! Audio: decoding files into samples, the sinks that play them, and the player thread
//! that starts items at exact instants. Knows nothing about schedules or HTTP.
