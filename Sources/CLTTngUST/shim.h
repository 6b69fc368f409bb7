// liblttng-ust (Debian: liblttng-ust-dev), found through `pkg-config lttng-ust`. Only the LTTng trait
// links it; the tracepoint provider that uses it is Sources/CRseqTraceLTTng.
#include <lttng/ust-version.h>
