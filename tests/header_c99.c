/* The public header compiles as strict C99. */
#include <vmem.h>

int main(void)
{
	vmem_stats_t st = { sizeof(st), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	return (int)(st.size == 0) + (VMEM_ADDR_MAX != ~(vmem_addr_t)0);
}
