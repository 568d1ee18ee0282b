# bash completion for deit_lora: its commands, and each command's flags, read from the program's
# own --help (so they are the flags of the deit_lora being completed); a flag that takes a VALUE
# completes file names, one that takes a number nothing.
_deit_lora() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} bin=${COMP_WORDS[0]}
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        local cmds
        cmds=$("$bin" --help 2>/dev/null | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
        mapfile -t COMPREPLY < <(compgen -W "$cmds --help --version" -- "$cur")
        return
    fi
    local help
    help=$("$bin" "${COMP_WORDS[1]}" --help 2>/dev/null)
    if [[ $prev == --* ]]; then
        local kind
        kind=$(printf '%s\n' "$help" | awk -v f="$prev" '$1 == f { print $2; exit }')
        if [ "$kind" = VALUE ]; then
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
        elif [ -n "$kind" ]; then
            return # a number: nothing to offer
        fi
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(printf '%s\n' "$help" | awk '/^  --/ { print $1 }') --help" -- "$cur")
    else
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}
complete -F _deit_lora deit_lora
