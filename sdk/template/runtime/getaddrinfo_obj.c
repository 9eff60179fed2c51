/*
 * getaddrinfo_obj.c - the compiled getaddrinfo.bpf.o, embedded in the
 * plugin's .so so the plugin is one file; its bytes go to host->bpf_load
 * as they are. GAI_BPF_OBJ is the object's path, set by the Makefile or
 * CMakeLists.txt (stripped of DWARF; its BTF stays: CO-RE needs it).
 */
#ifndef GAI_BPF_OBJ
#error "GAI_BPF_OBJ must name the BPF object to embed"
#endif

__asm__("	.section .rodata.gai_bpf_obj,\"a\",@progbits\n"
	"	.balign 8\n"
	"	.globl gai_bpf_start\n"
	"	.hidden gai_bpf_start\n"
	"gai_bpf_start:\n"
	"	.incbin \"" GAI_BPF_OBJ "\"\n"
	"	.globl gai_bpf_end\n"
	"	.hidden gai_bpf_end\n"
	"gai_bpf_end:\n"
	"	.previous\n");
