/* vmem_etcd.h compiles as strict C99, and links against the library. */
#include <vmem_etcd.h>

int main(void)
{
	vmem_etcd_opts_t o = {sizeof(o), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	vmem_etcd_stats_t st = {sizeof(st), 0, 0, 0, 0, 0, 0, 0, 0, 0};
	/* bad arguments are refused before anything touches the network */
	return vmem_etcd_get_stats(0, &st) == 0 || vmem_etcd_pool_create(&o, "", 0, 1, 1) == 0;
}
