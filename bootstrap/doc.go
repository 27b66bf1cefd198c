// Package bootstrap fetches and keeps current the directory a Tor client
// needs: the microdescriptor consensus (as a diff from the cached one when
// possible, verifying both digests), the authority certificates it lacks,
// and the microdescriptors it lacks, in large batches spread over up to
// three directory caches. Everything fetched is verified before use and
// stored in a dircache.Store, so a warm start within the consensus's
// freshness fetches nothing and a stale one fetches a diff. A start from a
// consensus that expired less than a day ago (reasonably live, which C tor
// builds circuits with too) is ready at once from it and the stored
// microdescriptors when those are enough, the primary guards' included;
// the diff and the new microdescriptors then come in the background, and
// Complete closes when they are in.
//
// Microdescriptors are asked for the primary guards' first, then the
// highest-bandwidth relays' first. The directory is ready (Ready, and
// Bootstrap returns) as soon as those in hand are enough to build circuits
// (netdir.DirInfo.Enough: the consensus's min_paths_for_circs_pct, as C
// tor's "enough directory info") and include the primary guards'; the
// rest download in the background, which then publishes the whole view
// and closes Complete. On the real 2019 directory that is after about a
// third of them.
//
// Every request goes over a one-hop circuit and a BEGIN_DIR stream to an
// ORPort: to the configured authorities until a consensus is known, then to
// caches listed in it. A source that answers garbage, 404 or nothing is
// abandoned for another; a truncated microdescriptor batch keeps its
// complete descriptors and only the rest is asked for again.
//
// While running, Run keeps the directory current: shortly after the
// consensus stops being fresh (SchedulePrompt) or at dir-spec's randomised
// client time (ScheduleDirSpec) it fetches the next consensus as a diff plus
// only the new microdescriptors, and publishes a new netdir.NetDir. The
// store records when each microdescriptor was last listed, but only every
// 12 hours of consensus time (rewriting thousands of listing times each
// hour was most of the keys a refresh wrote), and prunes those no consensus
// listed for a week and those 12 hours.
//
// It reports progress (phase, percent, bytes) to the application.
//
// It is not a parser (internal/netdoc), a store (dircache) or a path
// selector; it does not build multi-hop circuits.
package bootstrap
