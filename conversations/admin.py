from django.contrib import admin

from conversations.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["position", "role", "status", "text", "stop_reason", "error_code"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "team", "model", "updated_at"]
    list_filter = ["model", "team"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "model", "created_at"]
    list_filter = ["status", "role"]
    raw_id_fields = ["conversation"]
    list_select_related = ["conversation"]
