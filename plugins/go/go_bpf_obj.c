/*
 * go_bpf_obj.c - the compiled go.bpf.c, embedded in the plugin's .so so the
 * plugin is one file: the bytes go to host->bpf_load as they are.
 * GO_BPF_OBJ_PATH is set by CMakeLists.txt (the object stripped of DWARF;
 * its BTF stays, CO-RE needs it).
 */
#ifndef GO_BPF_OBJ_PATH
#error "GO_BPF_OBJ_PATH must name the BPF object to embed"
#endif

__asm__("	.section .rodata.go_bpf_obj,\"a\",@progbits\n"
	"	.balign 8\n"
	"	.globl go_bpf_obj_start\n"
	"	.hidden go_bpf_obj_start\n"
	"go_bpf_obj_start:\n"
	"	.incbin \"" GO_BPF_OBJ_PATH "\"\n"
	"	.globl go_bpf_obj_end\n"
	"	.hidden go_bpf_obj_end\n"
	"go_bpf_obj_end:\n"
	"	.previous\n");
