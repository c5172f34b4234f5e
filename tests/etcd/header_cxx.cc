// vmem_etcd.h compiles as C++ and links with C linkage.
#include <vmem_etcd.h>

static_assert(sizeof(vmem_etcd_opts_t) >= 2 * sizeof(uint32_t), "opts");

int main()
{
	vmem_etcd_opts_t o = {};
	o.size = sizeof(o);
	vmem_etcd_t *src = nullptr;
	return vmem_etcd_open(&o, "", &src) == 0 || src != nullptr;
}
