// The public header compiles as C++ and links with C linkage.
#include <vmem.h>

static_assert(VMEM_VERSION_MAJOR == 1, "major version");
static_assert(sizeof(vmem_addr_t) == 8, "64-bit resources");

int main()
{
	vmem_stats_t st = {};
	st.size = sizeof(st);
	return st.size == 0;
}
