/*
 * java_bpf_obj.c - the compiled java.bpf.c, embedded in the plugin's .so
 * (the bytes go to host->bpf_load as they are). JAVA_BPF_OBJ_PATH is set
 * by CMakeLists.txt (the object stripped of DWARF; its BTF stays).
 */
#ifndef JAVA_BPF_OBJ_PATH
#error "JAVA_BPF_OBJ_PATH must name the BPF object to embed"
#endif

__asm__("	.section .rodata.java_bpf_obj,\"a\",@progbits\n"
	"	.balign 8\n"
	"	.globl java_bpf_obj_start\n"
	"	.hidden java_bpf_obj_start\n"
	"java_bpf_obj_start:\n"
	"	.incbin \"" JAVA_BPF_OBJ_PATH "\"\n"
	"	.globl java_bpf_obj_end\n"
	"	.hidden java_bpf_obj_end\n"
	"java_bpf_obj_end:\n"
	"	.previous\n");
